"""Tests of `glisk serve`, the health server: real server processes, real PostgreSQL."""
