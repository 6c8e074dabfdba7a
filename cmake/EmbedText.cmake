# kurier_embed_text(TARGET SYMBOL FILE): compiles FILE into TARGET as the definition of
# `extern const std::string_view SYMBOL` (SYMBOL namespace-qualified, e.g.
# kurier::bounce::detail::kDefaultRules), so that no binary looks for its data files on
# disk at run time. Re-configured when FILE changes.
function(kurier_embed_text target qualified_symbol file)
  if(NOT qualified_symbol MATCHES "^(.+)::([A-Za-z_][A-Za-z_0-9]*)$")
    message(FATAL_ERROR "kurier_embed_text: '${qualified_symbol}' is not a namespace-qualified name")
  endif()
  set(KURIER_EMBED_NAMESPACE ${CMAKE_MATCH_1})
  set(KURIER_EMBED_SYMBOL ${CMAKE_MATCH_2})
  file(RELATIVE_PATH KURIER_EMBED_SOURCE ${PROJECT_SOURCE_DIR} ${file})
  file(READ ${file} KURIER_EMBED_TEXT)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${file})
  string(MAKE_C_IDENTIFIER ${qualified_symbol} generated)
  set(generated ${CMAKE_CURRENT_BINARY_DIR}/embedded/${generated}.cpp)
  configure_file(${CMAKE_CURRENT_FUNCTION_LIST_DIR}/embed_text.cpp.in ${generated} @ONLY)
  target_sources(${target} PRIVATE ${generated})
endfunction()
