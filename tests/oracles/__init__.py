"""Independent models, in plain Python, of what the jobs must produce: what the tests compare with."""
