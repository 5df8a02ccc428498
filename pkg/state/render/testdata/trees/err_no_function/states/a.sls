x:
  pkg:
    - name: vim
