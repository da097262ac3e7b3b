//! Name and label validation with apimachinery's messages (`util/validation`).
