# One INTERFACE target carries the warning set; every kurier target links it.
add_library(kurier_warnings INTERFACE)
target_compile_options(kurier_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
  $<$<BOOL:${KURIER_WERROR}>:-Werror>)
