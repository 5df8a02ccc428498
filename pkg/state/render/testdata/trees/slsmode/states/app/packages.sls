app-packages:
  pkg.installed:
    - pkgs: [python3, python3-venv]
