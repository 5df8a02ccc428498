include:
  - .install
  - .config
