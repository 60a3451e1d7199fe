defmodule ErlDriverCompat.Error do
  @moduledoc """
  Raised by the `!` functions of `ErlDriverCompat` (`load_driver!/2`,
  `unload_driver!/1`, `check_driver!/2`, `compile_driver!/3`, ...) where the
  plain function returns `{:error, reason}`.

  `reason` is that reason; the message is its `ErlDriverCompat.format_error/1`
  text (for `compile_driver!/3`, the compiler's output).

  ## Example

      iex> ErlDriverCompat.load_driver!("/nonexistent", "echo_drv")
      ** (ErlDriverCompat.Error) Cannot open the driver: No such file or directory (os error 2)

      iex> try do
      ...>   ErlDriverCompat.unload_driver!("never_loaded_drv")
      ...> rescue
      ...>   e in ErlDriverCompat.Error -> e.reason
      ...> end
      :not_loaded
  """
  defexception [:reason, :message]

  @typedoc "The exception: the `{:error, reason}` reason and its text."
  @type t :: %__MODULE__{reason: term(), message: String.t()}

  @impl true
  def exception(opts) do
    reason = Keyword.fetch!(opts, :reason)
    %__MODULE__{reason: reason, message: Keyword.get_lazy(opts, :message, fn -> text(reason) end)}
  end

  # format_error/1 raises for a term that is no reason of ours or erl_ddll's.
  defp text(reason) do
    reason |> :erl_driver_compat.format_error() |> List.to_string()
  rescue
    ArgumentError -> inspect(reason)
  end
end
