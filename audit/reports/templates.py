"""The report templates: which sections each law asks for, in its order, and what fills them.

* ``rcw-43.386``: Washington's accountability report (RCW 43.386.020) and the records of use
  behind its yearly report (RCW 43.386.070);
* ``eu-ai-act-26``: the deployer's annual report on post-remote biometric identification
  (EU AI Act Art. 26(10)), with the use records Art. 12(3) lists;
* ``oakland-9.64``: Oakland's surveillance technology annual report (OMC 9.64);
* ``full``: every section.

A section is a list of *parts*: ``("toml", keys)`` (the deployer's ``report.toml`` items,
printed as missing when absent), a name of log/evaluation blocks (``usage``, ``review``,
``anomalies``, ``accuracy``, ``integrity``, ``uses``, ``authorisation``, ``reviewer_rates``, ``retention``), or
``("waits", what)`` for data this deployment does not have yet (printed as
"not yet available in this deployment: ...").
"""

from __future__ import annotations

from typing import Any

__all__ = ["TEMPLATES", "TEMPLATE_TITLES", "SectionSpec"]

#: (id, title, references, parts)
SectionSpec = tuple[str, str, tuple[str, ...], tuple[Any, ...]]


_SYSTEM: SectionSpec = ("system", "The system: name, vendor, version", ("RCW 43.386.020(2)(a)",),
                        (("toml", ("system.name", "system.vendor", "system.version")), "configurations"))
_CAPABILITIES: SectionSpec = ("capabilities", "Capabilities and limitations", ("RCW 43.386.020(2)(b)",),
                              (("toml", ("system.capabilities", "system.limitations")),))
_DATA: SectionSpec = ("data", "Data inputs and outputs", ("RCW 43.386.020(2)(c)",),
                      (("toml", ("system.data_inputs", "system.data_outputs")), "galleries"))
_PURPOSE: SectionSpec = ("purpose", "Purpose and the decisions it supports", ("RCW 43.386.020(2)(d)-(e)",),
                         (("toml", ("purpose.statement", "purpose.decisions", "purpose.benefits")),))
_POLICY: SectionSpec = ("policy", "Use and data-management policy", ("RCW 43.386.020(2)(f)",),
                        (("toml", ("policy.use", "policy.data_minimisation", "policy.data_integrity",
                                   "policy.retention", "policy.security", "policy.sharing")), "retention"))
_TESTING: SectionSpec = ("testing", "Testing", ("RCW 43.386.020(2)(g)", "RCW 43.386.030"),
                         (("toml", ("testing.description",)),))
_ACCURACY: SectionSpec = ("accuracy", "Accuracy: false-match rates and their impact on subpopulations",
                          ("RCW 43.386.020(2)(g)", "EU AI Act Art. 26(10)", "OMC 9.64 (effectiveness)"),
                          ("accuracy", ("toml", ("policy.error_rate_plan",))))
_TRAINING: SectionSpec = ("training", "Training", ("RCW 43.386.020(2)(h)", "RCW 43.386.070"),
                          (("toml", ("training.description", "training.sessions")),))
_COMMUNITY: SectionSpec = ("community", "Community consultation", ("RCW 43.386.020(4)-(5)",),
                           (("toml", ("community.description", "community.meetings")),))
_USAGE: SectionSpec = ("usage", "How the system was used, and how much",
                       ("RCW 43.386.070", "EU AI Act Art. 26(10)", "OMC 9.64 (use)"), ("period", "usage"))
_REVIEW: SectionSpec = ("review", "Human review of matches (two-person rule)",
                        ("EU AI Act Art. 14(5)", "EU AI Act Art. 12(3)(d)", "OMC 9.64 (effectiveness)"),
                        ("review", "reviewer_rates"))
_ANOMALIES: SectionSpec = ("anomalies", "Refusals, anomalies and violations",
                           ("RCW 43.386.070", "OMC 9.64 (audits and violations)"),
                           ("anomalies", ("toml", ("oversight.audits",))))
_INTEGRITY: SectionSpec = ("integrity", "Integrity: the state of the log these numbers come from",
                           ("RCW 43.386.070", "EU AI Act Art. 12(1)"), ("integrity",))
_USES: SectionSpec = ("uses", "Each use with a match: period, reference database, input, who verified",
                      ("EU AI Act Art. 12(3)",), ("uses",))
_AUTHORISATION: SectionSpec = ("authorisation", "Authorisation of each use and the annual report's recipients",
                               ("EU AI Act Art. 26(10)",),
                               ("authorisation", ("toml", ("oversight.authorisation", "oversight.authorities"))))
_SHARING: SectionSpec = ("sharing", "Data sharing", ("OMC 9.64 (data sharing)",),
                         (("toml", ("policy.sharing",)), "exports"))
_AREAS: SectionSpec = ("areas", "Deployment by area", ("OMC 9.64 (deployment)",),
                       (("toml", ("oversight.deployment_areas",)), "galleries"))
_COMPLAINTS: SectionSpec = ("complaints", "Complaints", ("OMC 9.64 (complaints)",),
                            (("toml", ("complaints.received", "complaints.summary")),))
_BREACHES: SectionSpec = ("breaches", "Data breaches and unauthorised access", ("OMC 9.64 (data breaches)",),
                          (("toml", ("oversight.breaches",)), "integrity_summary"))
_EFFECTIVENESS: SectionSpec = ("effectiveness", "Effectiveness", ("OMC 9.64 (effectiveness statistics)",),
                               (("toml", ("oversight.effectiveness",)), "effectiveness"))
_COSTS: SectionSpec = ("costs", "Costs", ("OMC 9.64 (annual costs)",),
                       (("toml", ("costs.currency", "costs.items", "costs.funding")),))

#: Template -> its sections, in order.
TEMPLATES: dict[str, tuple[SectionSpec, ...]] = {
    "rcw-43.386": (_SYSTEM, _CAPABILITIES, _DATA, _PURPOSE, _POLICY, _TESTING, _ACCURACY, _TRAINING, _COMMUNITY,
                   _USAGE, _REVIEW, _ANOMALIES, _INTEGRITY),
    "eu-ai-act-26": (_SYSTEM, _PURPOSE, _AUTHORISATION, _USAGE, _USES, _REVIEW, _ACCURACY, _ANOMALIES, _INTEGRITY),
    "oakland-9.64": (_SYSTEM, _USAGE, _SHARING, _AREAS, _COMPLAINTS, _ANOMALIES, _BREACHES, _EFFECTIVENESS,
                     _ACCURACY, _COSTS, _INTEGRITY),
    "full": (_SYSTEM, _CAPABILITIES, _DATA, _PURPOSE, _POLICY, _TESTING, _TRAINING, _COMMUNITY, _AUTHORISATION,
             _USAGE, _USES, _REVIEW, _ACCURACY, _ANOMALIES, _SHARING, _AREAS, _COMPLAINTS, _BREACHES,
             _EFFECTIVENESS, _COSTS, _INTEGRITY),
}

#: Template -> its title.
TEMPLATE_TITLES = {
    "rcw-43.386": "Accountability report (RCW 43.386.020) and records of use (RCW 43.386.070)",
    "eu-ai-act-26": "Annual report on post-remote biometric identification (EU AI Act Art. 26(10))",
    "oakland-9.64": "Surveillance technology annual report (Oakland Municipal Code 9.64)",
    "full": "Accountability report: every section",
}
