"""wxcrm: the CRM back end behind the WeChat mini program of a domestic-services company."""

__version__ = "0.1.0"
