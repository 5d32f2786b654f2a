"""Code that runs inside kernels and job processes: the API client, tracking, training."""
