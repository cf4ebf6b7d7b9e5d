"""The local web interface (served by ``photosearch.web.server``)."""
