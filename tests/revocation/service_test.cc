#include <gtest/gtest.h>
TEST(RevocationPlaceholder, Builds) { SUCCEED(); }
