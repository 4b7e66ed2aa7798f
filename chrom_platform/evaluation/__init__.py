"""`chrom evaluate`: the platform run on a simulated history and scored against its ground
truth (run.py orchestrates, scoring.py scores)."""
