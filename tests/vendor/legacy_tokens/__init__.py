"""A third-party-style app: its second migration fills a column with RunPython and has no
reverse code, as several popular apps have shipped."""
