{
  "targets": [
    {
      "target_name": "known_answers",
      "sources": ["known_answers.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
