/* SPDX-License-Identifier: MIT */
/* placeholder: being written */
#include "scalemetrics/error.h"
