; Inno Setup 6 script: a per-user or per-machine installer of the one-folder bundle.
;   iscc /DAppVersion=0.1.0 /DSourceDir=..\..\dist\genmodel-sandbox packaging\windows\genmodel-sandbox.iss
; packaging\build-windows.ps1 runs it after PyInstaller; the installer lands in dist\.
; NOT RUN on the project's Linux machines (no Windows there): see packaging\README.md.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\genmodel-sandbox"
#endif

[Setup]
AppId={{6F0C2B7E-3D7A-4E55-9C8E-2A1B7D5E9F41}
AppName=Generative Model Sandbox
AppVersion={#AppVersion}
AppPublisher=genmodel-sandbox
DefaultDirName={autopf}\Generative Model Sandbox
DefaultGroupName=Generative Model Sandbox
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=genmodel-sandbox-{#AppVersion}-windows-x64-setup
SetupIconFile=..\icons\genmodel-sandbox.ico
UninstallDisplayIcon={app}\genmodel-sandbox.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Generative Model Sandbox"; Filename: "{app}\genmodel-sandbox.exe"
Name: "{autodesktop}\Generative Model Sandbox"; Filename: "{app}\genmodel-sandbox.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\genmodel-sandbox.exe"; Description: "{cm:LaunchProgram,Generative Model Sandbox}"; Flags: nowait postinstall skipifsilent
