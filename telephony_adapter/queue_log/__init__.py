"""Asterisk ``queue_log`` importer: the path into Lianxin for an existing
Asterisk call center.

``parser`` turns lines into typed records (every layout Asterisk has written
since 1.2), ``agents`` maps the log's agent field to employee numbers,
``translate`` turns records into the same commands the live adapter sends, and
``importer`` runs them and summarises what was created. See
docs/queue-log-import.md for the mapping and its choices.
"""

from telephony_adapter.queue_log.agents import AgentDirectory, load_agent_map
from telephony_adapter.queue_log.importer import ImportOptions, ImportSummary, import_queue_log
from telephony_adapter.queue_log.parser import LineError, Record, parse_line, parse_lines

__all__ = [
    "AgentDirectory", "ImportOptions", "ImportSummary", "LineError", "Record",
    "import_queue_log", "load_agent_map", "parse_line", "parse_lines",
]
