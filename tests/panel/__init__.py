"""Two small apps whose migrations the admin tests deploy release by release, in-process."""
