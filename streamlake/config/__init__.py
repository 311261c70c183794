"""Config at the boundary: typed YAML, the onboarding registry, platform settings, paths."""
