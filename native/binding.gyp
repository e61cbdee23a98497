{
  "targets": [
    { "target_name": "wirepool_sockopt", "sources": ["sockopt.c"] }
  ]
}
