"""Accountability reports from the live record (RCW 43.386, EU AI Act Art. 26(10), OMC 9.64).

Data model -> sections -> renderers:

- :mod:`audit.reports.config`: the deployer's ``report.toml`` (what no log knows), validated;
- :mod:`audit.reports.integrity`: the verified, checkpointed log state a report counts;
- :mod:`audit.reports.query`: the counting (DuckDB SQL over the stored records, read once);
- :mod:`audit.reports.usage`, :mod:`audit.reports.accuracy`: the blocks of the sections;
- :mod:`audit.reports.privacy`: public versions (pseudonyms, small cells, optional OpenDP noise);
- :mod:`audit.reports.templates`: which sections each law asks for;
- :mod:`audit.reports.build`: assembles a :class:`Report`;
- :mod:`audit.reports.render`: JSON, self-contained HTML (plotly.js inline), PDF (headless Chromium);
- :mod:`audit.reports.figures`: the plotly figures (loaded only when a figure is drawn);
- :mod:`audit.reports.generate`: THE way to make one, an audited ``report`` action.
"""

from audit.reports.build import ReportRequest
from audit.reports.config import SCHEMA as REPORT_TOML_KEYS
from audit.reports.config import ReportConfig, ReportConfigError, load_report_config, parse_report_config
from audit.reports.generate import GeneratedReport, generate_report
from audit.reports.model import NOT_AVAILABLE, Report
from audit.reports.render import FORMATS as REPORT_FORMATS
from audit.reports.render import RenderError, draw_figure
from audit.reports.templates import TEMPLATE_TITLES as REPORT_TEMPLATE_TITLES
from audit.reports.templates import TEMPLATES as REPORT_TEMPLATES

__all__ = [
    "NOT_AVAILABLE",
    "REPORT_FORMATS",
    "REPORT_TEMPLATES",
    "REPORT_TEMPLATE_TITLES",
    "REPORT_TOML_KEYS",
    "GeneratedReport",
    "RenderError",
    "Report",
    "ReportConfig",
    "ReportConfigError",
    "ReportRequest",
    "draw_figure",
    "generate_report",
    "load_report_config",
    "parse_report_config",
]
