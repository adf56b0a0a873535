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
/* Quality cards: one tile per metric, coloured by its verdict. */
:host { --qa-ok: #3fb950; --qa-warn: #d29922; --qa-bad: #f85149; --qa-unknown: #8b949e; }
.qa-tiles { display: grid; grid-template-columns: repeat(3, 1fr); gap: 6px; margin: 2px 0 4px 0; }
.qa-tile { border: 1px solid var(--qa-line); border-left: 4px solid var(--qa-unknown);
           border-radius: 5px; padding: 3px 7px 4px 7px; min-width: 0; }
.qa-tile .qa-tile-label { font-size: 11px; color: var(--qa-muted); text-transform: uppercase;
                          letter-spacing: .04em; display: flex; justify-content: space-between; }
.qa-tile .qa-tile-value { font-size: 17px; font-weight: 600; font-variant-numeric: tabular-nums;
                          white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.qa-tile .qa-tile-sub { font-size: 11.5px; color: var(--qa-muted); white-space: nowrap;
                        overflow: hidden; text-overflow: ellipsis; }
.qa-tile.qa-ok { border-left-color: var(--qa-ok); }
.qa-tile.qa-warn { border-left-color: var(--qa-warn); background: rgba(210,153,34,0.08); }
.qa-tile.qa-bad { border-left-color: var(--qa-bad); background: rgba(248,81,73,0.10); }
.qa-tile.qa-pending .qa-tile-value { color: var(--qa-muted); }
.qa-verdict { font-weight: 600; text-transform: none; letter-spacing: 0; }
.qa-verdict.qa-ok { color: var(--qa-ok); }
.qa-verdict.qa-warn { color: var(--qa-warn); }
.qa-verdict.qa-bad { color: var(--qa-bad); }
.qa-verdict.qa-unknown { color: var(--qa-unknown); }
.qa-legend { font-size: 11px; color: var(--qa-muted); margin: 0 0 2px 0; line-height: 1.5; }
.qa-legend .qa-dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%;
                     margin: 0 3px 0 8px; vertical-align: baseline; }
.qa-legend .qa-dot:first-child { margin-left: 0; }
.qa-dot.qa-ok { background: var(--qa-ok); } .qa-dot.qa-warn { background: var(--qa-warn); }
.qa-dot.qa-bad { background: var(--qa-bad); } .qa-dot.qa-unknown { background: var(--qa-unknown); }
.qa-star { font-size: 12.5px; margin: 2px 0 4px 0; }
.qa-star b { font-variant-numeric: tabular-nums; }
.qa-row { display: flex; align-items: baseline; gap: 8px; }
"""
