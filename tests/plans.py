"""EXPLAIN plans as the plan tests read them: every node of a plan, and the tables it reads."""

from __future__ import annotations

from typing import Any

# How a plan reads a table through an index (a bitmap heap scan visits only the pages its index
# scan names).
INDEX_READS = frozenset({"Index Scan", "Index Only Scan", "Bitmap Heap Scan"})


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """`node` and every node below it."""
    return [node, *(found for child in node.get("Plans", []) for found in plan_nodes(child))]


def table_reads(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """Each read of a table in `plan`: the node's type and the table's name."""
    return [
        (node["Node Type"], node["Relation Name"])
        for node in plan_nodes(plan)
        if "Relation Name" in node
    ]
