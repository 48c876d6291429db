"""SOFA (AES69) files: the layout and conventions, the GeneralFIR / SingleRoomSRIR writers, and
a reader that summarises any SOFA file."""
