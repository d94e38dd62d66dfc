"""The screens: page routes, Jinja2 templates, static JS/CSS and the translation catalogue."""
