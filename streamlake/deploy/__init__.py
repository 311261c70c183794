"""Deployments of the pipeline beyond this machine, rendered from conf/."""
