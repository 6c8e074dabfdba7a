# One INTERFACE target carries the warning set; every kurier target links it.
add_library(kurier_warnings INTERFACE)
target_compile_options(kurier_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
  # g++ 12 reports a false mismatched-new-delete inside Asio's awaitable frame
  # allocator (operator new/delete of awaitable_frame_base) once coroutines inline.
  -Wno-mismatched-new-delete
  $<$<BOOL:${KURIER_WERROR}>:-Werror>)
