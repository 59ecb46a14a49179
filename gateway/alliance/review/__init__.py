"""The central prescription pre-review (前置审核) and post-review (事后点评): rules as data,
facts computed per prescription, findings as DetectedIssue (POL-06, POL-07, POL-09, POL-20)."""
