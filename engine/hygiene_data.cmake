# The built-in list-hygiene data (data/*.txt, data/provider-syntax.toml) compiled into
# kurier_engine, so no binary looks for the data directory at run time; users add
# their own lists through [hygiene] in kurier.toml.
set(kurier_hygiene_data_files
  disposable-domains.txt roles.txt trap-keywords.txt typo-domains.txt provider-syntax.toml)
foreach(name IN LISTS kurier_hygiene_data_files)
  set(path ${PROJECT_SOURCE_DIR}/data/${name})
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${path})
  string(MAKE_C_IDENTIFIER ${name} var)
  string(TOUPPER ${var} var)
  file(READ ${path} KURIER_HYGIENE_${var})
endforeach()
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/hygiene_data.cpp.in ${CMAKE_CURRENT_BINARY_DIR}/hygiene_data.cpp @ONLY)
target_sources(kurier_engine PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/hygiene_data.cpp)
