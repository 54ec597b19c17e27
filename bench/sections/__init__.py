"""The benchmark's sections, in the order the results table lists them."""

SECTIONS = ("edge", "processor", "paths", "latency", "store", "memory", "scaling", "detector", "images")
