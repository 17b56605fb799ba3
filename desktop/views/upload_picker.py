"""File → New upload…: one dialog that chooses files and folders together (a folder uploads everything in it)."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QDialog, QFileDialog, QWidget


class UploadPicker(QFileDialog):
    """Qt's own file dialog, not the platform's: a native dialog chooses either files or one folder, never both.

    Several rows may be selected, files and folders alike; Upload takes the selection as it is (a double click or
    Enter on a folder still opens it)."""

    def __init__(self, parent: QWidget | None = None, folder: str = "") -> None:
        super().__init__(parent, "Choose files or folders to upload", folder)
        self.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        self.setFileMode(QFileDialog.FileMode.ExistingFiles)
        self.setLabelText(QFileDialog.DialogLabel.Accept, "Upload…")
        self.setLabelText(QFileDialog.DialogLabel.FileName, "Files or folders")
        for view in self.findChildren(QAbstractItemView):  # the list and detail views: folders selectable too
            view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.chosen: list[str] = []

    def accept(self) -> None:
        """Take what is selected, folders included (the base dialog would open a selected folder instead)."""
        self.chosen = [path for path in self.selectedFiles() if path]
        if self.chosen:
            QDialog.accept(self)

    @classmethod
    def choose(cls, parent: QWidget | None = None) -> list[str]:
        """Ask, modally; the chosen paths, or none when the user cancelled."""
        picker = cls(parent)
        try:
            return picker.chosen if picker.exec() == QDialog.DialogCode.Accepted else []
        finally:
            picker.deleteLater()
