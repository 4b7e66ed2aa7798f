"""Process analytics: envelope, drift, column performance, peaks, verdicts and pictures."""
