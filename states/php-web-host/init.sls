include:
  - .packages
  - .deploy
