"""Night reports and alarms: dataset configuration, nights, alarm rules, report folders, e-mail.

Pure logic, no Panel, Bokeh or app imports; ``app/reports_service.py`` wires
it to the event bus, the quality history and the scheduler.
"""

from components.reports.config import AlarmRule, ConfigError, DatasetConfig, ReportsConfig, load_config

__all__ = ["AlarmRule", "ConfigError", "DatasetConfig", "ReportsConfig", "load_config"]
