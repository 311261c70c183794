"""Helpers the tests share: private stacks, seeded streams, time formats, lake files, Maven poms."""
