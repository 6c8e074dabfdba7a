# The ops dashboard (engine/dashboard.html) compiled into kurier_engine as a string,
# so `kurier serve` needs no data files at run time. Re-generated when the page changes.
set(kurier_dashboard_file ${CMAKE_CURRENT_SOURCE_DIR}/dashboard.html)
file(READ ${kurier_dashboard_file} KURIER_DASHBOARD_HTML)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${kurier_dashboard_file})
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/dashboard.cpp.in ${CMAKE_CURRENT_BINARY_DIR}/dashboard.cpp @ONLY)
target_sources(kurier_engine PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/dashboard.cpp)
