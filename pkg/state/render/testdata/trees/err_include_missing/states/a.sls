include:
  - nothere
