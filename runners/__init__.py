"""Runners: the side that does the work (page scans, visual regression, browser test
cases, notifications) and returns plain values for the job worker to report."""
