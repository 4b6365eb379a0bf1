"""Containers: the CRI container calls, their records, and conmon."""
