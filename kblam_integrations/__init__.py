"""KBLaM for LangChain and LlamaIndex."""
