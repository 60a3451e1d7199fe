[
  inputs: ["{mix,.formatter}.exs", "lib/**/*.{ex,exs}", "test/elixir/**/*.{ex,exs}"]
]
