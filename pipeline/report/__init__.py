"""A job's report: JSON records or an HTML page (see writer.py), and the summary it is made from."""
from .single import FileReport
from .summary import JobInfo, JobSummary, job_info
from .writer import FORMATS, ReportPage, check_report_path, write_json, write_report

__all__ = ["FORMATS", "FileReport", "JobInfo", "JobSummary", "ReportPage", "check_report_path", "job_info",
           "write_json", "write_report"]
