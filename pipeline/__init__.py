"""The work behind nstvid: jobs, the optimisation, media I/O. Never prints, never exits."""
