"""No statement reaches outside the store: no files, network, processes or shutdowns from SQL.

chDB is the ClickHouse engine with no users and no grants, so ``file()``, ``url()``,
``executable()``, ``INTO OUTFILE``, ``SYSTEM SHUTDOWN`` (which signals the whole process group)
and the rest run for whoever reaches the port. A ``readonly=1`` handle refuses the table
functions and writes, but still runs the scalar ``file()`` and ``INTO OUTFILE`` (checked on
chDB 4.4), and the pipeline's handles cannot be read-only, so every statement of every user is
checked here before it runs, on ClickHouse's own parse of it rather than on a regex:

1. ``SELECT formatQuery({q:String})`` parses the text as ClickHouse will (heredocs, ``#``
   comments and all) and refuses anything but one statement: chDB's ``query()`` would run a
   second statement after a ``;`` that the store's own lexer had missed;
2. ``EXPLAIN AST`` of that statement lists every function, table function, table engine,
   database engine and dictionary source by name (but prints a ``SETTINGS`` clause as a bare
   ``Set``, so names called in the canonical text are checked too): a name outside the
   allow-lists below is refused. The deny set is *every* table function and engine the engine knows
   (``system.table_functions``, ``system.table_engines``, ``system.database_engines``) minus
   the local ones, so a table function added by a later chDB is refused until allowed here;
3. the canonical text (no comments, no heredocs: safe to lex) is refused when it is a
   ``SYSTEM``/``BACKUP``/``RESTORE``/``ATTACH`` statement, a ``CREATE DICTIONARY`` (sources
   reach out), or contains ``INTO OUTFILE``/``FROM INFILE``, the ``dialect`` setting (another
   parser would see another statement) or a setting naming a file (``format_schema``,
   ``output_format_schema``, ``format_template_*``).

Verdicts are cached per statement text (an LRU of 4096): a statement seen before costs
nothing more; a new one costs two parse requests (~3 ms measured for ``SELECT n``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

from streams.embedded.ch_errors import ACCESS_DENIED, QueryError
from streams.embedded.sql_scan import tokens_of

# Table functions that read only the store itself or generate data.
SAFE_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generaterandom", "generateseries",
    "generate_series", "values", "null", "view", "merge", "loop", "format", "dictionary",
    "primes",
})
SAFE_TABLE_ENGINES = frozenset({
    "mergetree", "replacingmergetree", "summingmergetree", "aggregatingmergetree",
    "collapsingmergetree", "versionedcollapsingmergetree", "coalescingmergetree",
    "graphitemergetree", "memory", "log", "tinylog", "stripelog", "null", "set", "join",
    "buffer", "merge", "view", "materializedview", "dictionary", "generaterandom",
})
SAFE_DATABASE_ENGINES = frozenset({"atomic", "ordinary", "memory", "lazy"})
# Scalar functions that read the machine (``file`` reads any file the process can).
# ``disk(type = local, path = ...)`` in a table's SETTINGS puts its data at any path.
OUTWARD_FUNCTIONS = frozenset({"file", "catboostevaluate", "disk"})
# Always refused, whatever the engine's tables list (a table function's lowercase name).
ALWAYS_REFUSED = frozenset({
    "file", "url", "s3", "hdfs", "remote", "remotesecure", "mysql", "postgresql", "executable",
    "input", "python", "cluster", "clusterallreplicas", "odbc", "jdbc", "sqlite", "mongodb",
    "redis", "azureblobstorage", "gcs", "iceberg", "deltalake", "hudi", "urlcluster",
    "s3cluster", "filecluster", "hdfscluster", "executablepool", "filesystem", "distributed",
    "kafka", "filelog", "keepermap",
})
REFUSED_KEYWORDS = frozenset({"SYSTEM", "BACKUP", "RESTORE", "ATTACH"})


def file_setting(name: str) -> bool:
    """Settings naming a file the engine reads or writes (chDB is clickhouse-local: no
    ``format_schema_path`` confinement), or a parser other than ClickHouse's."""
    lowered = name.lower()
    return ("format_schema" in lowered or lowered.startswith("format_template")
            or lowered in ("dialect", "allow_experimental_kusto_dialect",
                           "allow_experimental_prql_dialect"))

Run = Callable[[str, dict[str, str], str], str]  # (sql, params, format) -> the answer as text


def outward_names(table_functions: Iterable[str], table_engines: Iterable[str],
                  database_engines: Iterable[str]) -> frozenset[str]:
    """Lowercase names refused wherever they appear as a function in a statement's AST."""
    return frozenset(
        {n.lower() for n in table_functions} - SAFE_TABLE_FUNCTIONS
        | {n.lower() for n in table_engines} - SAFE_TABLE_ENGINES
        | {n.lower() for n in database_engines} - SAFE_DATABASE_ENGINES
        | OUTWARD_FUNCTIONS | ALWAYS_REFUSED)


def tsv_escaped(text: str) -> str:
    """A query parameter's value as ClickHouse parses it (escaped like a TSV field)."""
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r").replace("\0", "\\0"))


def refuse(what: str) -> QueryError:
    return QueryError.make(ACCESS_DENIED, "ACCESS_DENIED",
                           f"{what} is refused by the Rapport store: no statement may reach files, "
                           "the network, processes or the server itself (docs/store.md, Security)")


def function_names(ast: str) -> list[str]:
    """Names of every function-like node of an ``EXPLAIN AST`` answer.

    An identifier may hold a newline and so fake a line: that can only add names (a false
    refusal), never hide a real node, since every line is looked at."""
    names = []
    for line in ast.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].startswith("Function"):
            names.append(words[1])
    return names


def called_names(canonical: str) -> list[str]:
    """Every name followed by ``(`` in ClickHouse's formatting of a statement."""
    tokens = list(tokens_of(canonical))
    names = []
    for (kind, text), (next_kind, next_text) in zip(tokens, tokens[1:], strict=False):
        if next_kind == "open" and next_text == "(" and kind in ("word", "qid"):
            names.append(text.strip("`\""))
    return names


def check_canonical(canonical: str) -> None:
    """Refusals read from ClickHouse's own formatting of the statement."""
    words = [text.upper() for kind, text in tokens_of(canonical) if kind == "word"]
    if not words:
        return
    if words[0] in REFUSED_KEYWORDS:
        raise refuse(f"A {words[0]} statement")
    if words[0] == "CREATE" and "DICTIONARY" in words[:6]:
        raise refuse("CREATE DICTIONARY (its sources reach outside the store)")
    pairs = set(zip(words, words[1:], strict=False))
    if ("INTO", "OUTFILE") in pairs:
        raise refuse("INTO OUTFILE")
    if ("FROM", "INFILE") in pairs:
        raise refuse("FROM INFILE")
    for word in words:
        if file_setting(word):
            raise refuse(f"The setting {word.lower()}")


class Guard:
    """Checks statements on a chDB handle before they run (see the module doc)."""

    def __init__(self, outward: frozenset[str], cache_size: int = 4096) -> None:
        self.outward = outward
        self._cache: OrderedDict[str, bool] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def check(self, sql: str, params: dict[str, str], run: Run) -> None:
        """Raise :class:`QueryError` (ACCESS_DENIED, or chDB's own parse error) unless ``sql``
        stays inside the store. ``run`` runs a statement on a handle and returns its text."""
        # The verdict depends on the text only: a query parameter is substituted as a literal or
        # an identifier (``{t:Identifier}``), never as a function or an engine.
        key = sql
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return
        canonical = run("SELECT formatQuery({q:String})", {"q": tsv_escaped(sql)}, "RawBLOB")
        check_canonical(canonical)
        # EXPLAIN AST prints a SETTINGS clause as a bare "Set" node, so a function inside it
        # (``disk(type = local, path = ...)``) is looked for in the canonical text as well.
        for name in called_names(canonical):
            if name.lower() in self.outward:
                raise refuse(f"{name}()")
        ast = run("EXPLAIN AST " + canonical, params, "TSVRaw")
        for name in function_names(ast):
            if name.lower() in self.outward:
                raise refuse(f"{name}()")
        with self._lock:
            self._cache[key] = True
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
