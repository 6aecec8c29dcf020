"""The data layer: records, queries, formulas, imports, ownership and how
records are shown (layouts, list views), all working on the metadata model
(leadhub/metadata) over the platform (leadhub/platform)."""
