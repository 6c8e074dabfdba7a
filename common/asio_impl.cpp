// Compiles Boost.Asio and its SSL support once for the whole project
// (BOOST_ASIO_SEPARATE_COMPILATION is set on every target that links kurier_common).
#include <utility>

#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
