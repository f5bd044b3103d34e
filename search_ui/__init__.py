"""The Streamlit front end: a thin script over indexer's search engine."""
