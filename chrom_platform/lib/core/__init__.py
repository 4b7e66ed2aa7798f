"""Shared vocabulary: the reading contract, master data, the CV rule and peak maths. What the
simulator and every other part import; imports nothing else of ours."""
