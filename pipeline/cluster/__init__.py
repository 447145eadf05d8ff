"""--engine ray: a folder job or a video on the Ray actors of a cluster (see docs/cluster.md)."""
