"""Styles shared by the dashboard's HTML panes."""

__all__ = ["STYLESHEET"]

#: Styles of the HTML panes (each pane has its own shadow root).
STYLESHEET = """
:host { --qa-muted: #8b949e; --qa-line: rgba(127,127,127,0.25); }
h3 { margin: 4px 0 2px 0; font-size: 13px; font-weight: 600; letter-spacing: .04em;
     text-transform: uppercase; color: var(--qa-muted); }
.qa-hint, .qa-region, .qa-profile { color: var(--qa-muted); font-size: 12px; margin: 2px 0 4px 0; }
.qa-profile { color: inherit; }
table.qa-table { border-collapse: collapse; width: 100%; font-size: 13px; }
table.qa-table th { text-align: left; font-weight: 500; color: var(--qa-muted);
                    padding: 2px 12px 2px 0; white-space: nowrap; width: 1%; }
table.qa-table td { padding: 2px 0; font-variant-numeric: tabular-nums;
                    font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
table.qa-table tr + tr { border-top: 1px solid var(--qa-line); }
table.qa-stats td { text-align: right; padding-right: 14px; }
table.qa-table td + th { padding-left: 8px; }
pre.qa-header { font-size: 11.5px; line-height: 1.35; max-height: 320px; overflow: auto;
                margin: 0; padding: 6px; background: rgba(127,127,127,0.08); border-radius: 4px; }
.qa-title { font-size: 18px; font-weight: 700; letter-spacing: .02em; }
.qa-sub { color: var(--qa-muted); font-size: 13px; margin-left: 12px; }
.qa-status { font-size: 12px; color: var(--qa-muted); }
.qa-notice { display: inline-block; padding: 3px 10px; border-radius: 12px; font-size: 12px;
             background: #1f6feb; color: white; }
.qa-live { color: #3fb950; }
.qa-paused { color: #d29922; }
"""
