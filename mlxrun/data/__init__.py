"""Data files and the shard each rank reads: the data model, text, csv/tsv, binary arrays
and generated data, and where a bad number is."""
