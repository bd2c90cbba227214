"""The data layer: sources are read into typed, Arrow-backed tables.

``sources/`` holds one reader per file format and ``open_table``; ``table`` the
Table and JoinedTable; ``columns`` Python values and pandas frames to Arrow
columns; ``media`` images and class sets with their Arrow encoding; ``infer``
the one Arrow -> DataType map; ``store`` the versioned local store; ``damage``
where a damaged Parquet file is damaged.
"""
