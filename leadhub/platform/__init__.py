"""Kernel runtime: config, database, runtime DDL, records, queries, permissions, jobs."""
