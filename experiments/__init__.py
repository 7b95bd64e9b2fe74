"""Paper figures and benchmarks; each module: config -> run -> compare with theory -> plot."""
