"""The report: queries assembled into what a pricing manager reads (`build`), and its renderers
(`render` for HTML/CSV/JSON, `terminal` for the compact console view)."""
